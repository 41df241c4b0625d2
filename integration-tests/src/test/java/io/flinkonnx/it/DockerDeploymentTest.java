package io.flinkonnx.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.JarFile;
import org.junit.jupiter.api.Test;

/**
 * What can be checked of the Docker deployment without a Docker engine: the compose file parses and
 * wires the services, the Dockerfile copies exactly the jars this build staged, ORT is parent-first.
 */
class DockerDeploymentTest {
    private static final Path DOCKER = Path.of("../docker");

    @Test
    void everyFileTheDockerfileCopiesIsAJarThisBuildMade() throws Exception {
        List<String> sources = new ArrayList<>();
        for (String line : Files.readAllLines(DOCKER.resolve("Dockerfile"))) {
            if (line.startsWith("COPY ")) {
                sources.add(line.split("\\s+")[1]);
            }
        }
        assertThat(sources).containsExactly("target/stage/onnxruntime.jar", "target/stage/flink-onnx-job.jar");
        try (JarFile ort = new JarFile(
                        DOCKER.resolve("target/stage/onnxruntime.jar").toFile());
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
                .containsExactlyInAnyOrder("kafka", "jobmanager", "taskmanager", "submit");
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

    private static String flinkVersion() throws Exception {
        String pom = Files.readString(Path.of("../pom.xml"));
        int start = pom.indexOf("<flink.version>") + "<flink.version>".length();
        return pom.substring(start, pom.indexOf("</flink.version>", start));
    }
}
