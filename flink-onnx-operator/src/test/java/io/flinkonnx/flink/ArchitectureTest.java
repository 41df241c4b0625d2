package io.flinkonnx.flink;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;
import static org.assertj.core.api.Assertions.assertThat;

import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import java.util.Map;
import java.util.TreeMap;
import org.apache.flink.annotation.Internal;
import org.apache.flink.api.common.functions.Function;
import org.apache.flink.streaming.api.operators.StreamOperator;
import org.junit.jupiter.api.Test;

/**
 * The layout stays a map of the architecture, checked on the compiled classes as Flink checks its own: the root
 * package {@code io.flinkonnx.flink} is the public API (public types only, no operator implementation); the
 * internal packages beside it (engine, tensor, session, placement, drift, versions, batching, models,
 * stateful) depend on each other without cycles, and none grows into a grab bag of more than 15 classes. The
 * root is left out of the cycle rule by design: internals use its types and it creates them.
 */
class ArchitectureTest {
    private static final String ROOT = "io.flinkonnx.flink";
    private static final JavaClasses MAIN = new ClassFileImporter()
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
            .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_JARS)
            .importPackages(ROOT);

    @Test
    void internalPackagesHaveNoDependencyCycle() {
        slices().matching(ROOT + ".(*)..").should().beFreeOfCycles().check(MAIN);
    }

    @Test
    void theRootPackageHoldsNoOperatorImplementation() {
        noClasses()
                .that()
                .resideInAPackage(ROOT)
                .should()
                .beAssignableTo(StreamOperator.class)
                .because("operators live in packages of their own (batching, models, stateful)")
                .check(MAIN);
    }

    @Test
    void theRootPackageHoldsOnlyPublicApiTypes() {
        classes()
                .that()
                .resideInAPackage(ROOT)
                .and()
                .areTopLevelClasses()
                .should()
                .bePublic()
                .andShould()
                .notBeAnnotatedWith(Internal.class)
                .because("the root package is the public API; internals go to the package named for what they do")
                .check(MAIN);
    }

    @Test
    void onlyTheRootPackageOffersUserFunctions() {
        // a user's map function is API: it lives in the root (OnnxInference), never in an internal package
        noClasses()
                .that()
                .resideOutsideOfPackage(ROOT)
                .and()
                .arePublic()
                .and()
                .areTopLevelClasses()
                .should()
                .implement(Function.class)
                .check(MAIN);
    }

    @Test
    void noInternalPackageHoldsMoreThanFifteenClasses() {
        Map<String, Integer> sizes = new TreeMap<>();
        for (JavaClass c : MAIN) {
            if (c.isTopLevelClass() && !c.getPackageName().equals(ROOT)) {
                sizes.merge(c.getPackageName(), 1, Integer::sum);
            }
        }
        assertThat(sizes).as("internal packages").containsKeys(ROOT + ".engine", ROOT + ".batching");
        assertThat(sizes).allSatisfy((pkg, n) -> assertThat(n).as(pkg).isLessThanOrEqualTo(15));
    }
}
