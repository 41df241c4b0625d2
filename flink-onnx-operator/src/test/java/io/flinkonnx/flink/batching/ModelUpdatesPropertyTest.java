package io.flinkonnx.flink.batching;

import static org.assertj.core.api.Assertions.assertThat;

import io.flinkonnx.flink.BatchPolicy;
import io.flinkonnx.flink.FailedRecord;
import io.flinkonnx.flink.FallbackReport;
import io.flinkonnx.flink.ModelUpdate;
import io.flinkonnx.flink.ModelUpdateReport;
import io.flinkonnx.flink.ModelUpdates;
import io.flinkonnx.flink.OnnxInference;
import io.flinkonnx.flink.OnnxInferenceSpec;
import io.flinkonnx.flink.SessionStats;
import io.flinkonnx.model.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.TwoInputStreamOperatorTestHarness;
import org.assertj.core.data.Offset;

/**
 * Random sequences of model-update events on one operator that both watches a folder and reads a control
 * stream: versions appearing in the folder, control messages with good and wrong pins (rollbacks among them),
 * slow loads (held on the loader thread while the task thread applies, scores and checkpoints), checkpoints,
 * failovers (restoring the last checkpoint, the control topic replayed from its offset). After every step:
 * each prediction's label and output name the bytes that scored it, each update is judged against the version
 * serving when it applies, in message order, and the serving version is the last one accepted. Every version
 * is a tiny MLP with weights of its own, so an output identifies the bytes. Deterministic per seed: nothing is
 * applied but when the test moves processing time, after the loader has finished.
 */
class ModelUpdatesPropertyTest {
    private static final TypeInformation<float[]> FLOATS = PrimitiveArrayTypeInfo.FLOAT_PRIMITIVE_ARRAY_TYPE_INFO;
    private static final TypeInformation<Tuple2<String, float[]>> SCORED = Types.TUPLE(Types.STRING, FLOATS);
    private static final long POLL_MILLIS = 60_000;
    private static final float[] X = TestModels.features(3, 4);

    @Property(tries = 150)
    void everyPredictionNamesTheBytesThatScoredItAndTheLastAcceptedUpdateServes(@ForAll("events") List<Integer> events)
            throws Exception {
        int openBefore = SessionStats.open();
        Path dir = Files.createTempDirectory("flink-onnx-updates-prop-");
        try {
            new Run(dir).play(events);
        } finally {
            try (Stream<Path> walk = Files.walk(dir)) {
                walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
        assertThat(SessionStats.open()).as("sessions open after the run").isEqualTo(openBefore);
    }

    @Provide
    Arbitrary<List<Integer>> events() {
        return Arbitraries.integers().between(0, 9_999).list().ofMinSize(6).ofMaxSize(22);
    }

    private static OnnxInferenceSpec<float[], Tuple2<String, float[]>> spec(Path model) {
        return OnnxInference.<float[]>builder(model.toString())
                .encoder((x, row) -> row.put("x", x))
                .decoder((x, out) -> Tuple2.of(out.modelVersion(), out.floats("y")), SCORED)
                .build();
    }

    private record Published(String label, Path path, String sha) {}

    private record Control(String label, Path path, String pin, String fileSha) {
        boolean good() {
            return pin.equals(fileSha);
        }

        ModelUpdate message() {
            return ModelUpdate.of(path.toString(), label).withSha256(pin);
        }
    }

    /** One run: the operator under test and the model of what it must do. */
    private static final class Run {
        final Path models;
        final Map<String, TestModels.Mlp> bytes = new HashMap<>();
        final List<Published> published = new ArrayList<>();
        final List<Control> log = new ArrayList<>(); // the control topic
        final Deque<Control> unanswered = new ArrayDeque<>();
        TwoInputStreamOperatorTestHarness<float[], ModelUpdate, Tuple2<String, float[]>> h;
        long now;
        String label;
        String sha;
        String handled; // the folder version last handled

        // the last checkpoint
        OperatorSubtaskState snapshot;
        int offset;
        List<Control> pendingAtCheckpoint = List.of();
        String labelAtCheckpoint;
        String shaAtCheckpoint;
        String handledAtCheckpoint;

        Run(Path dir) throws Exception {
            models = Files.createDirectories(dir.resolve("models"));
            publish();
        }

        void publish() throws Exception {
            int n = published.size() + 1;
            TestModels.Mlp mlp = new TestModels.Mlp(4, 8, 2, n);
            Path path =
                    mlp.writeTo(Files.createDirectories(models.resolve("v" + n)).resolve("model.onnx"));
            String digest = sha256(path);
            bytes.put(digest, mlp);
            published.add(new Published("v" + n, path, digest));
        }

        void play(List<Integer> events) throws Exception {
            start();
            try {
                int step = 0;
                for (int e : events) {
                    step++;
                    int op = e % 20;
                    int param = e / 20;
                    if (op < 3) {
                        awaitLoads(); // the loader reads the folder: not while the test writes it
                        publish();
                    } else if (op < 10) {
                        Published target = published.get(param % published.size());
                        boolean good = op < 8;
                        offer(new Control("c" + step, target.path, good ? target.sha : "ab".repeat(32), target.sha));
                    } else if (op < 12) {
                        apply();
                    } else if (op < 14) {
                        awaitLoads();
                        advance(POLL_MILLIS); // applies what loaded, then polls the folder
                        apply();
                    } else if (op < 16) {
                        score();
                    } else if (op < 17) {
                        slowLoad(step, param);
                    } else if (op < 19) {
                        checkpoint();
                    } else {
                        failover();
                    }
                    check();
                }
                apply();
                check();
                score();
            } finally {
                h.close();
            }
        }

        void start() throws Exception {
            ModelUpdates updates = ModelUpdates.watch(models.toString(), Duration.ofMillis(POLL_MILLIS));
            h = new TwoInputStreamOperatorTestHarness<>(new ControlledInferenceOperator<>(
                    spec(published.get(0).path),
                    BatchPolicy.builder()
                            .maxBatchSize(4)
                            .maxBatchDelay(Duration.ZERO)
                            .build(),
                    FailedRecord.tag(FLOATS),
                    updates));
            h.setProcessingTime(now);
            if (snapshot != null) {
                h.initializeState(snapshot);
                label = labelAtCheckpoint;
                sha = shaAtCheckpoint;
                handled = handledAtCheckpoint;
            } else {
                label = io.flinkonnx.flink.versions.ModelFolder.labelOf(
                        published.get(0).path.toString());
                sha = published.get(0).sha;
                handled = null;
            }
            unanswered.clear();
            unanswered.addAll(pendingAtCheckpoint);
            h.open();
            for (Control c : log.subList(offset, log.size())) { // the source replays the topic from its offset
                offer(c);
            }
        }

        void offer(Control c) throws Exception {
            if (!log.contains(c)) {
                log.add(c);
            }
            unanswered.add(c);
            h.processElement2(new StreamRecord<>(c.message()));
        }

        BatchingInferenceOperator<float[], ?> operator() {
            @SuppressWarnings("unchecked")
            var op = (BatchingInferenceOperator<float[], ?>) h.getOperator();
            return op;
        }

        void awaitLoads() throws Exception {
            assertThat(operator().versions().awaitLoaded(Duration.ofSeconds(60)))
                    .isTrue();
        }

        void advance(long millis) throws Exception {
            now += millis;
            h.setProcessingTime(now);
        }

        /** What loaded is applied, in order. */
        void apply() throws Exception {
            awaitLoads();
            advance(50);
        }

        /**
         * A control message whose load is held on the loader thread while the task thread applies what loaded
         * before it, scores, and (by {@code param}) checkpoints; then it is released and applied.
         */
        void slowLoad(int step, int param) throws Exception {
            Published target = published.get(param % published.size());
            Control c = new Control("c" + step, target.path, target.sha, target.sha);
            CountDownLatch entered = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            operator().versions().seam(uri -> {
                if (uri.equals(c.path.toString())) {
                    entered.countDown();
                    assertThat(release.await(60, TimeUnit.SECONDS)).isTrue();
                }
            });
            try {
                offer(c);
                assertThat(entered.await(60, TimeUnit.SECONDS)).isTrue(); // every load before it has finished
                advance(50); // applies those
                check();
                score();
                if (param % 2 == 0) {
                    checkpoint();
                }
            } finally {
                release.countDown();
            }
            operator().versions().seam(null);
            apply();
        }

        void checkpoint() throws Exception {
            snapshot = h.snapshot(offset + 1L, now);
            offset = log.size();
            pendingAtCheckpoint = List.copyOf(unanswered);
            labelAtCheckpoint = label;
            shaAtCheckpoint = sha;
            handledAtCheckpoint = handled;
        }

        void failover() throws Exception {
            h.close();
            start();
        }

        void score() throws Exception {
            h.getOutput().clear();
            h.processElement1(new StreamRecord<>(X.clone(), 1));
            List<Tuple2<String, float[]>> out = new ArrayList<>();
            for (Object o : h.getOutput()) {
                if (o instanceof StreamRecord<?> r) {
                    @SuppressWarnings("unchecked")
                    Tuple2<String, float[]> t = (Tuple2<String, float[]>) r.getValue();
                    out.add(t);
                }
            }
            assertThat(out).hasSize(1);
            assertThat(out.get(0).f0).as("the prediction's label").isEqualTo(label);
            assertThat(out.get(0).f1)
                    .as("the prediction's output: the bytes of " + label)
                    .containsExactly(bytes.get(sha).reference(X), Offset.offset(1e-5f));
        }

        /** Checks every report since the last check against the model, then the serving version. */
        void check() {
            var queue = h.getSideOutput(ModelUpdateReport.TAG);
            while (queue != null && !queue.isEmpty()) {
                ModelUpdateReport r = queue.poll().getValue();
                switch (r.outcome) {
                    case RESTORED -> {
                        assertThat(r.version).isEqualTo(label);
                        assertThat(r.sha256).isEqualTo(sha);
                    }
                    default -> {
                        if (r.version.startsWith("c")) {
                            Control c = unanswered.poll();
                            assertThat(c)
                                    .as("a control message answers " + r.version)
                                    .isNotNull();
                            assertThat(r.version)
                                    .as("control messages answered in order")
                                    .isEqualTo(c.label);
                            if (c.good()) {
                                expectAccepted(r, c.fileSha);
                            } else {
                                assertThat(r.outcome).isEqualTo(ModelUpdateReport.Outcome.REFUSED);
                            }
                        } else {
                            assertThat(r.version)
                                    .as("a folder version handled already is not loaded again")
                                    .isNotEqualTo(handled);
                            Published p = published.stream()
                                    .filter(v -> v.label.equals(r.version))
                                    .findFirst()
                                    .orElseThrow();
                            expectAccepted(r, p.sha);
                            handled = r.version;
                        }
                        assertThat(r.servingVersion).isEqualTo(label);
                    }
                }
            }
            var fallback = h.getSideOutput(FallbackReport.TAG);
            if (fallback != null) {
                fallback.clear();
            }
            assertThat(operator().versions().serving().version).isEqualTo(label);
            assertThat(operator().versions().serving().sha256).isEqualTo(sha);
        }

        /** An update judged against the version serving as it applies, which it then replaces. */
        void expectAccepted(ModelUpdateReport r, String fileSha) {
            assertThat(r.outcome)
                    .as("%s against %s (%s)", r.version, label, sha)
                    .isEqualTo(
                            fileSha.equals(sha)
                                    ? ModelUpdateReport.Outcome.ALREADY_SERVING
                                    : ModelUpdateReport.Outcome.PROMOTED);
            assertThat(r.sha256).isEqualTo(fileSha);
            label = r.version;
            sha = fileSha;
        }
    }

    private static String sha256(Path file) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }
}
