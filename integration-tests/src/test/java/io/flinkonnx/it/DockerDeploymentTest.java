package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.flinkonnx.examples.ScoringJobConfig;
import io.flinkonnx.examples.TransactionProducer;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What can be checked of the Docker deployment without a Docker engine: the compose file parses and
 * wires the services, the Dockerfile copies exactly what this build staged (its lib/ jars: exactly README's list),
 * ORT is parent-first.
 */
class DockerDeploymentTest {
    private static final Path DOCKER = Path.of("../docker");

    @Test
    void everyFileTheDockerfileCopiesIsOneThisBuildMadeAndItsLibIsReadmesList() throws Exception {
        List<String> copies = new ArrayList<>();
        for (String line : Files.readAllLines(DOCKER.resolve("Dockerfile"))) {
            if (line.startsWith("COPY ")) {
                copies.add(line.substring("COPY ".length()).trim());
            }
        }
        assertThat(copies)
                .containsExactly(
                        "target/stage/lib/ /opt/flink/lib/",
                        "target/stage/flink-onnx-job.jar /opt/flink/usrlib/flink-onnx-job.jar",
                        "target/stage/models/fraud-mlp.onnx /models/fraud-mlp.onnx",
                        "sql/score.sql /opt/flink/sql/score.sql");
        List<String> lib;
        try (var jars = Files.list(DOCKER.resolve("target/stage/lib"))) {
            lib = jars.map(j -> j.getFileName().toString()).toList();
        }
        assertThat(lib)
                .as("the image's additions to lib/")
                .containsExactlyInAnyOrderElementsOf(SqlClientIT.readmeLibJars());
        // score.sql's model is the one the job jar bundles
        try (JarFile examples =
                new JarFile(DOCKER.resolve("target/stage/flink-onnx-job.jar").toFile())) {
            assertThat(Files.readAllBytes(DOCKER.resolve("target/stage/models/fraud-mlp.onnx")))
                    .isEqualTo(examples.getInputStream(examples.getEntry("models/fraud-mlp.onnx"))
                            .readAllBytes());
        }
        String ortJar = lib.stream()
                .filter(n -> n.startsWith("onnxruntime"))
                .findFirst()
                .orElseThrow();
        try (JarFile ort =
                        new JarFile(DOCKER.resolve("target/stage/lib/" + ortJar).toFile());
                JarFile job = new JarFile(
                        DOCKER.resolve("target/stage/flink-onnx-job.jar").toFile())) {
            assertThat(ort.getEntry("ai/onnxruntime/OrtSession.class")).isNotNull();
            assertThat(job.getManifest().getMainAttributes().getValue("Main-Class"))
                    .isEqualTo("io.flinkonnx.examples.KafkaScoringJob");
            assertThat(job.getEntry("io/flinkonnx/flink/OnnxInference.class")).isNotNull();
            assertThat(job.getEntry("models/fraud-mlp.onnx")).isNotNull();
            // ORT must not travel in the job jar: a second child-first copy cannot load its JNI library.
            assertThat(job.stream().filter(e -> e.getName().startsWith("ai/onnxruntime/")))
                    .isEmpty();
            // Beside lib/'s Kafka SQL connector, the job's own connector must not be an org.apache.flink. class
            // (parent-first: lib/'s would win, with its shaded Kafka client; AbstractMethodError).
            assertThat(job.stream()
                            .map(e -> e.getName())
                            .filter(n -> n.startsWith("org/apache/flink/connector/kafka/")
                                    || n.startsWith("org/apache/flink/streaming/connectors/kafka/")))
                    .isEmpty();
            assertThat(job.getEntry("io/flinkonnx/shaded/org/apache/flink/connector/kafka/source/KafkaSource.class"))
                    .isNotNull();
        }
        assertThat(Files.readString(DOCKER.resolve("Dockerfile")))
                .contains("classloader.parent-first-patterns.additional: ai.onnxruntime.")
                .contains("FROM ${FLINK_IMAGE}")
                .contains("ARG FLINK_IMAGE=flink:" + flinkVersion() + "-java17");
    }

    @Test
    void dockerfileKeepsMetricNameCollisionWarningsOutOfBothLogConfigurations() throws Exception {
        String dockerfile = Files.readString(DOCKER.resolve("Dockerfile"));
        assertThat(dockerfile)
                .contains("for f in log4j.properties log4j-console.properties")
                .contains("logger.metricgroup.name = org.apache.flink.metrics.MetricGroup")
                .contains("logger.metricgroup.level = ERROR")
                .contains(">> /opt/flink/conf/$f");
    }

    @Test
    void composeFileParsesAndWiresKafkaFlinkAndTheSubmission() throws Exception {
        JsonNode compose = new ObjectMapper(new YAMLFactory())
                .readTree(DOCKER.resolve("docker-compose.yml").toFile());
        JsonNode services = compose.get("services");
        assertThat(services.fieldNames())
                .toIterable()
                .containsExactlyInAnyOrder(
                        "kafka", "topics", "jobmanager", "taskmanager", "submit", "producer", "prometheus", "grafana");
        assertThat(services.at("/kafka/image").asText()).isEqualTo("apache/kafka:4.2.0");
        assertThat(services.at("/taskmanager/deploy/replicas").asInt()).isEqualTo(2);
        for (String flink : List.of("jobmanager", "taskmanager")) {
            assertThat(services.at("/" + flink + "/environment/FLINK_PROPERTIES")
                            .asText())
                    .contains("classloader.parent-first-patterns.additional: ai.onnxruntime.");
        }
        assertThat(services.at("/taskmanager/environment/FLINK_PROPERTIES").asText())
                .contains("taskmanager.numberOfTaskSlots: 2");
        assertThat(services.at("/submit/command").asText())
                .contains("flink run")
                .contains("/opt/flink/usrlib/flink-onnx-job.jar")
                .contains("--bootstrap.servers=kafka:9092");
    }

    @Test
    void composeCreatesEveryTopicTheJobUsesBeforeTheJobAndTheProducerStart() throws Exception {
        JsonNode services = new ObjectMapper(new YAMLFactory())
                .readTree(DOCKER.resolve("docker-compose.yml").toFile())
                .get("services");
        String topics = services.at("/topics/command").asText();
        ScoringJobConfig defaults = ScoringJobConfig.defaults();
        for (String key : defaults.keys()) {
            if (key.startsWith("topic.") && !defaults.get(key).isEmpty()) {
                assertThat(topics).as(key).containsPattern("\\b" + defaults.get(key) + "\\b");
            }
        }
        for (String sqlTopic : List.of("transactions", "sql-predictions")) {
            assertThat(Files.readString(DOCKER.resolve("sql/score.sql"))).contains("'topic' = '" + sqlTopic + "'");
            assertThat(topics).as("score.sql's " + sqlTopic).containsPattern("\\b" + sqlTopic + "\\b");
        }
        assertThat(topics).contains("kafka-topics.sh").contains("--create --if-not-exists");
        for (String after : List.of("submit", "producer")) {
            assertThat(services.at("/" + after + "/depends_on/topics/condition").asText())
                    .as(after + " waits for the topics")
                    .isEqualTo("service_completed_successfully");
        }
        assertThat(services.at("/producer/command").asText())
                .contains(TransactionProducer.class.getName())
                .contains("--bootstrap.servers=kafka:9092")
                .contains("--topic=" + defaults.get("topic.input"));
    }

    /**
     * Metrics in the tools users watch: every Flink container turns on Flink's Prometheus reporter (the image ships
     * it as a plugin, which the Dockerfile checks at build time) on the port Prometheus scrapes, the JobManager by
     * name and each TaskManager replica through DNS; Grafana reads that Prometheus under the uid the dashboard's
     * panels name, and loads the dashboard from the folder the compose file mounts. Images are pinned.
     */
    @Test
    void composeScrapesEveryFlinkProcessWithPrometheusAndProvisionsGrafanaWithTheDashboard() throws Exception {
        ObjectMapper yaml = new ObjectMapper(new YAMLFactory());
        JsonNode services =
                yaml.readTree(DOCKER.resolve("docker-compose.yml").toFile()).get("services");
        String port = "9249";
        for (String flink : List.of("jobmanager", "taskmanager")) {
            assertThat(services.at("/" + flink + "/environment/FLINK_PROPERTIES")
                            .asText())
                    .as(flink)
                    .contains("metrics.reporter.prom.factory.class: "
                            + "org.apache.flink.metrics.prometheus.PrometheusReporterFactory")
                    .contains("metrics.reporter.prom.port: " + port);
        }
        assertThat(Files.readString(DOCKER.resolve("Dockerfile")))
                .contains("RUN ls /opt/flink/plugins/metrics-prometheus/flink-metrics-prometheus-*.jar");
        assertThat(services.at("/prometheus/image").asText()).matches("prom/prometheus:v\\d+\\.\\d+\\.\\d+");
        assertThat(services.at("/grafana/image").asText()).matches("grafana/grafana:\\d+\\.\\d+\\.\\d+");

        // every file or folder mounted into them is in docker/
        java.util.Map<String, String> mounts = new java.util.HashMap<>();
        for (String tool : List.of("prometheus", "grafana")) {
            for (JsonNode volume : services.at("/" + tool + "/volumes")) {
                String[] parts = volume.asText().split(":");
                assertThat(DOCKER.resolve(parts[0])).as(volume.asText()).exists();
                mounts.put(parts[1], parts[0]);
            }
        }
        JsonNode prometheus = yaml.readTree(
                DOCKER.resolve(mounts.get("/etc/prometheus/prometheus.yml")).toFile());
        List<String> targets = new ArrayList<>();
        for (JsonNode job : prometheus.get("scrape_configs")) {
            job.path("static_configs").forEach(c -> c.path("targets").forEach(t -> targets.add(t.asText())));
            for (JsonNode dns : job.path("dns_sd_configs")) {
                dns.path("names")
                        .forEach(n ->
                                targets.add(n.asText() + ":" + dns.path("port").asText()));
            }
        }
        assertThat(targets).containsExactlyInAnyOrder("jobmanager:" + port, "taskmanager:" + port);

        Path provisioning = DOCKER.resolve(mounts.get("/etc/grafana/provisioning"));
        JsonNode datasource = yaml.readTree(
                        provisioning.resolve("datasources/prometheus.yml").toFile())
                .at("/datasources/0");
        assertThat(datasource.path("type").asText()).isEqualTo("prometheus");
        assertThat(datasource.path("url").asText()).isEqualTo("http://prometheus:9090");
        assertThat(services.at("/prometheus/ports/0").asText()).endsWith(":9090");
        JsonNode dashboard = new ObjectMapper().readTree(GrafanaDashboardTest.DASHBOARD.toFile());
        assertThat(dashboard.at("/templating/list/0/datasource/uid").asText())
                .isEqualTo(datasource.path("uid").asText());
        String dashboards = yaml.readTree(
                        provisioning.resolve("dashboards/flink-onnx.yml").toFile())
                .at("/providers/0/options/path")
                .asText();
        assertThat(DOCKER.resolve(mounts.get(dashboards)).resolve("flink-onnx.json"))
                .as("the dashboard in the folder Grafana's provider reads")
                .hasSameBinaryContentAs(GrafanaDashboardTest.DASHBOARD);
    }

    /**
     * The compose file's producer runs from the staged job jar alone plus Flink's {@code lib/} (here: the
     * logging API Flink's {@code lib/} ships); this runs that class path in a JVM of its own against a real
     * broker and reads what it produced.
     */
    @Test
    void theComposeProducerRunsFromTheJobJarAndFillsTheInputTopic(@TempDir Path tmp) throws Exception {
        try (TestKafka kafka = TestKafka.start()) {
            kafka.createTopics(2, "compose-transactions");
            String classPath = DOCKER.resolve("target/stage/flink-onnx-job.jar").toAbsolutePath()
                    + File.pathSeparator
                    + jarOf(org.slf4j.LoggerFactory.class);
            Path log = tmp.resolve("producer.log");
            Process producer = new ProcessBuilder(
                            Path.of(System.getProperty("java.home"), "bin", "java")
                                    .toString(),
                            "-cp",
                            classPath,
                            TransactionProducer.class.getName(),
                            "--bootstrap.servers=" + kafka.bootstrapServers(),
                            "--topic=compose-transactions",
                            "--records=5000")
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .start();
            assertThat(producer.waitFor(2, TimeUnit.MINUTES)).isTrue();
            assertThat(producer.exitValue()).as(Files.readString(log)).isZero();
            List<ConsumerRecord<String, String>> records = kafka.readCommitted("compose-transactions", 5000);
            assertThat(records).hasSize(5000);
            // one malformed on purpose (for the dead-letter topic), every other one a scorable transaction
            assertThat(records).filteredOn(r -> r.value().endsWith("]}")).hasSize(5000 - 1);
            assertThat(records).allSatisfy(r -> assertThat(r.value()).startsWith("{\"id\":\"" + r.key() + "\""));
        }
    }

    private static String jarOf(Class<?> type) throws Exception {
        return Path.of(type.getProtectionDomain().getCodeSource().getLocation().toURI())
                .toString();
    }

    private static String flinkVersion() throws Exception {
        String pom = Files.readString(Path.of("../pom.xml"));
        int start = pom.indexOf("<flink.version>") + "<flink.version>".length();
        return pom.substring(start, pom.indexOf("</flink.version>", start));
    }
}
