package io.flinkonnx.flink.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.flinkonnx.flink.RecordConversionException;
import io.flinkonnx.model.Dim;
import io.flinkonnx.model.ElementType;
import io.flinkonnx.model.TensorSpec;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What a record's strings weigh against the byte bounds, and the single-String shorthand. */
class StringValuesTest {
    private static final List<TensorSpec> TEXT =
            List.of(TensorSpec.tensor("text", ElementType.STRING, List.of(Dim.symbolic("batch"))));
    private static final List<TensorSpec> WORDS =
            List.of(TensorSpec.tensor("words", ElementType.STRING, List.of(Dim.symbolic("batch"), Dim.symbolic("n"))));

    @Test
    void stringsWeighTheirUtf8BytesPlusAFixedCostEach() {
        String[] words = {"card", "é€", "\uD83D\uDE00", ""};
        RecordInputs row = new RecordInputs("m", WORDS);
        row.put("words", words);
        long utf8 = 0;
        for (String w : words) {
            utf8 += w.getBytes(StandardCharsets.UTF_8).length;
        }
        assertThat(utf8).isEqualTo(4 + 5 + 4);
        assertThat(row.inputBytes(0)).isEqualTo(utf8 + 4L * RecordInputs.STRING_OVERHEAD_BYTES);
        assertThat(row.byteEstimate()).isEqualTo(row.inputBytes(0));
        // a heap copy (what a buffered record keeps) weighs the same
        row.detach();
        assertThat(row.copy().inputBytes(0)).isEqualTo(row.inputBytes(0));
    }

    @Test
    void aSingleStringIsOneValueOfAStringInput() {
        RecordInputs row = new RecordInputs("m", TEXT);
        row.put("text", "wire");
        assertThat(row.values(0)).isEqualTo(new String[] {"wire"});
        assertThat(row.shape(0)).isEmpty();
    }

    @Test
    void aStringForANumericInputIsRefusedNamingBothTypes() {
        RecordInputs row = new RecordInputs(
                "m", List.of(TensorSpec.tensor("x", ElementType.FLOAT, List.of(Dim.symbolic("batch"), Dim.fixed(1)))));
        assertThatThrownBy(() -> row.put("x", "1.5"))
                .isInstanceOf(RecordConversionException.class)
                .hasMessage("Input 'x' expects FLOAT values (float[]) but the record gave String (not an array);"
                        + " values are never cast");
    }

    @Test
    void aLowSurrogateWithoutItsHighHalfIsRefused() {
        RecordInputs row = new RecordInputs("m", WORDS);
        assertThatThrownBy(() -> row.put("words", new String[] {"ok", "\uDE00x"}))
                .isInstanceOf(RecordConversionException.class)
                .hasMessage("Input 'words' holds an unpaired UTF-16 surrogate (\\uDE00) at char 0 of string 1: it is"
                        + " not text and has no UTF-8 form");
    }
}
