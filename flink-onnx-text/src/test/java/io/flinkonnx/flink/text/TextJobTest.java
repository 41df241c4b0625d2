package io.flinkonnx.flink.text;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.flink.text.testing.TextModels;
import io.flinkonnx.flink.text.testing.TextReference;
import io.flinkonnx.testing.FlinkClusters;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/** Text embeddings in a real job on 2 TaskManagers x 2 slots equal the independent reference. */
class TextJobTest {
    @RegisterExtension
    static final MiniClusterExtension CLUSTER = FlinkClusters.twoByTwo();

    private static final TypeInformation<Doc> DOC = TypeInformation.of(Doc.class);

    @TempDir
    Path dir;

    /** Texts of 1 to 60 words of the test vocabulary and a few outside it; every 29th is null. */
    static List<Doc> docs(int n) {
        List<String> words = List.of(
                "good", "bad", "movie", "the", "service", "was", "late", "flink", "stream", "Tokens", "ok!", "refund,",
                "zebra", "qwerty", "42", "café");
        Random random = new Random(7);
        List<Doc> docs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (i % 29 == 0) {
                docs.add(new Doc(i, null));
                continue;
            }
            StringBuilder text = new StringBuilder();
            int length = 1 + random.nextInt(60);
            for (int w = 0; w < length; w++) {
                text.append(w == 0 ? "" : " ").append(words.get(random.nextInt(words.size())));
            }
            docs.add(new Doc(i, text.toString()));
        }
        return docs;
    }

    @Test
    void embeddingsOfAStreamOfTextsEqualTheReferenceAndNullTextsAreDeadLetters() throws Exception {
        Path model = TextModels.writeEncoder(dir.resolve("encoder.onnx"));
        Path tokenizer = TextModels.writeTokenizer(dir.resolve("tokenizer.json"));
        List<Doc> docs = docs(300);

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        DataStream<Doc> input = env.fromData(docs, DOC).rebalance();
        SentenceEmbedding embedding = SentenceEmbedding.mean().normalized();
        OnnxInferenceSpec<Doc, Tuple2<Integer, float[]>> spec = OnnxInference.<Doc>builder(model.toString())
                .encoder(TextEncoder.<Doc>builder(tokenizer.toString(), d -> d.text)
                        .maxLength(48)
                        .build())
                .decoder((doc, out) -> Tuple2.of(doc.id, embedding.embed(out)), TextEncoderTest.EMBEDDED)
                .build();
        SingleOutputStreamOperator<Tuple2<Integer, float[]>> scored = OnnxInference.batched(
                input,
                spec,
                BatchPolicy.builder()
                        .maxBatchSize(16)
                        .maxBatchDelay(Duration.ofMillis(20))
                        .build());
        CloseableIterator<Tuple2<Integer, float[]>> scoredIt = scored.collectAsync();
        CloseableIterator<FailedRecord<Doc>> failedIt =
                scored.getSideOutput(FailedRecord.tag(DOC)).collectAsync();
        env.execute("text embeddings");
        List<Tuple2<Integer, float[]>> predictions = FlinkClusters.drain(scoredIt);
        List<FailedRecord<Doc>> deadLetters = FlinkClusters.drain(failedIt);

        assertThat(deadLetters)
                .extracting(f -> f.record.id)
                .allMatch(id -> id % 29 == 0)
                .hasSize(11);
        assertThat(deadLetters)
                .extracting(f -> f.reason)
                .containsOnly("The text is null: there is nothing to tokenize");
        assertThat(predictions).hasSize(300 - 11);
        try (TextReference reference = new TextReference(model, tokenizer, 48)) {
            for (Tuple2<Integer, float[]> p : predictions) {
                String text = docs.get(p.f0).text;
                assertThat(p.f1).as(text).containsExactly(reference.meanEmbedding(text, true), within(1e-5f));
            }
        }
        assertThat(SessionStats.open()).isZero();
    }
}
