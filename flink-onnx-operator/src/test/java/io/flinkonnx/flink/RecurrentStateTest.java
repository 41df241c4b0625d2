package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The declaration is checked as it is built, with messages saying what is wrong and what is allowed. */
class RecurrentStateTest {
    @Test
    void aDeclarationWithoutStateIsRefusedPointingToTheBatchedOperator() {
        assertThatThrownBy(() -> RecurrentState.builder().constant("sr", 16000L).build())
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("state(\"h\", \"hn\")")
                .hasMessageContaining("OnnxInference.batched");
    }

    @Test
    void anInputDeclaredTwiceIsRefused() {
        assertThatThrownBy(() -> RecurrentState.builder().state("h", "hn").constant("h", 1L))
                .hasMessageContaining("Input 'h' is declared twice");
        assertThatThrownBy(() -> RecurrentState.builder().state("h", "hn").state("c", "hn"))
                .hasMessageContaining("Output 'hn' already gives state 'h'");
    }

    @Test
    void aNegativeBatchAxisAndANonPositiveTtlAreRefused() {
        assertThatThrownBy(() -> RecurrentState.builder().state("h", "hn", -1)).hasMessageContaining("must be >= 0");
        assertThatThrownBy(() -> RecurrentState.builder().ttl(Duration.ZERO)).hasMessageContaining("at least 1 ms");
    }

    @Test
    void constantsAndInitialValuesMustBeArraysOfTheirShape() {
        assertThatThrownBy(() -> RecurrentState.builder().constant("w", new float[3], 2, 2))
                .hasMessageContaining("shape [2, 2] (4 values) but 3 values were given");
        assertThatThrownBy(() -> RecurrentState.builder().constant("w", "text", 1))
                .hasMessageContaining("must be a primitive array");
        assertThatThrownBy(() -> RecurrentState.builder().initial("h", new float[4]))
                .hasMessageContaining("names no declared state");
    }

    @Test
    void theDeclarationIsImmutable() {
        float[] initial = {1, 2};
        RecurrentState<Object> state = RecurrentState.builder()
                .state("h", "hn")
                .initial("h", initial)
                .constant("sr", 16000L)
                .build();
        initial[0] = 9;
        ((float[]) state.pairs().get(0).initial())[1] = 9;
        assertThat((float[]) state.pairs().get(0).initial()).containsExactly(1, 2);
        assertThat(state.supplies("sr")).isTrue();
        assertThat(state.supplies("x")).isFalse();
        assertThat(state.constants().get(0).shape()).isEmpty();
    }
}
