package io.flinkonnx.flink;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.source.doctree.DocCommentTree;
import com.sun.source.doctree.DocTree;
import com.sun.source.doctree.ParamTree;
import com.sun.source.tree.ClassTree;
import com.sun.source.tree.CompilationUnitTree;
import com.sun.source.tree.MethodTree;
import com.sun.source.tree.Tree;
import com.sun.source.tree.VariableTree;
import com.sun.source.util.DocTrees;
import com.sun.source.util.JavacTask;
import com.sun.source.util.TreePath;
import com.sun.source.util.TreePathScanner;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import javax.lang.model.element.Modifier;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;

/**
 * The public API's entry points keep their method-level Javadoc: every public method and constructor of the
 * classes below (their nested types included) has a comment with an {@code @param} for each parameter and an
 * {@code @return} unless it returns nothing. The sources are parsed with the JDK's own Java parser (the compiler
 * tree API, parse only: nothing is compiled or resolved), so generics, annotations and varargs read as javac
 * reads them.
 *
 * <p>Left out on purpose: methods annotated {@code @Override} (Javadoc inherits their comment) and members that
 * are not public (private, package-private; an interface's members count as public unless private).
 */
class PublicApiJavadocTest {
    /** The public API classes whose entry points are documented method by method (issue 22). */
    private static final List<String> DOCUMENTED_CLASSES = List.of(
            "OnnxInferenceSpec",
            "BatchPolicy",
            "RecurrentState",
            "ModelCache",
            "OnnxInferenceFunction",
            "ModelSelector",
            "InputRow",
            "OutputRow",
            "FailedRecord",
            "DriftTolerance",
            "OnnxInference",
            "ModelRef",
            "ModelUpdate",
            "ModelUpdates",
            "ModelUpdateReport",
            "RecordEncoder",
            "ResultDecoder",
            "ReferenceExtractor",
            "ModelChecks",
            "SessionStats");

    private static final Path SOURCES = Path.of("src/main/java/io/flinkonnx/flink");

    enum Kind {
        NO_JAVADOC,
        NO_PARAM,
        NO_RETURN,
        RETURN_ON_NOTHING
    }

    /** One missing or wrong tag: {@code where} names the class, the method and its parameter types. */
    record Problem(Kind kind, String where, String what) {
        @Override
        public String toString() {
            return where + ": " + what;
        }
    }

    @Test
    void everyPublicMethodAndConstructorHasJavadoc() throws IOException {
        assertNone(
                Kind.NO_JAVADOC,
                "Public methods and constructors without Javadoc (write one: what it does, then its"
                        + " @param, @return and @throws tags)");
    }

    @Test
    void everyParameterIsDocumentedWithParam() throws IOException {
        assertNone(Kind.NO_PARAM, "Parameters without @param (say what each is and which values it takes)");
    }

    @Test
    void everyMethodThatReturnsAValueDocumentsItWithReturn() throws IOException {
        assertNone(Kind.NO_RETURN, "Methods returning a value without @return (builders: \"this builder\")");
    }

    @Test
    void constructorsAndVoidMethodsClaimNoReturn() throws IOException {
        assertNone(Kind.RETURN_ON_NOTHING, "Constructors or void methods with an @return (remove the tag)");
    }

    @Test
    void theCheckedClassesStillDeclarePublicEntryPoints() throws IOException {
        for (String name : DOCUMENTED_CLASSES) {
            Path file = SOURCES.resolve(name + ".java");
            assertThat(file)
                    .as("%s is checked for Javadoc; if it moved, update DOCUMENTED_CLASSES", name)
                    .isRegularFile();
            assertThat(publicMembers(name, Files.readString(file)))
                    .as("public methods and constructors found in %s", name)
                    .isNotEmpty();
        }
    }

    /** The check itself: a source missing each tag yields one problem per missing tag, naming where. */
    @Test
    void theCheckNamesTheClassMethodAndMissingTag() {
        String source = """
                package x;
                /** A sample. */
                public final class Sample {
                    /**
                     * Documented.
                     *
                     * @param a the a
                     * @return the sum
                     */
                    public int fine(int a) { return a; }

                    /** Documented, @param b missing. */
                    public void noParam(int b) {}

                    /**
                     * Documented, @return missing.
                     *
                     * @param c the c
                     */
                    public String noReturn(int c) { return ""; }

                    public Sample() {}

                    /**
                     * A constructor does not return.
                     *
                     * @param d the d
                     * @return nothing
                     */
                    public Sample(int d) {}

                    /** Overrides inherit their comment. */
                    @Override
                    public String toString() { return ""; }

                    private void hidden(int e) {}

                    /** An interface's members are public unless private. */
                    public interface Callback {
                        int call(String f);

                        private void helper() {}
                    }

                    static final class Hidden {
                        public void notApi(int g) {}
                    }
                }
                """;

        List<Problem> problems = check("Sample", source);

        assertThat(problems)
                .extracting(Problem::toString)
                .containsExactlyInAnyOrder(
                        "Sample#noParam(int): no @param b",
                        "Sample#noReturn(int): no @return (returns String)",
                        "Sample#Sample(): no Javadoc",
                        "Sample#Sample(int): @return on a constructor",
                        "Sample.Callback#call(String): no Javadoc");
    }

    private static void assertNone(Kind kind, String description) throws IOException {
        List<Problem> found = new ArrayList<>();
        for (String name : DOCUMENTED_CLASSES) {
            for (Problem p : check(name, Files.readString(SOURCES.resolve(name + ".java")))) {
                if (p.kind() == kind) {
                    found.add(p);
                }
            }
        }
        assertThat(found)
                .withFailMessage(
                        "%s, %d found:%n  %s",
                        description,
                        found.size(),
                        found.stream().map(Problem::toString).collect(Collectors.joining("\n  ")))
                .isEmpty();
    }

    private static List<String> publicMembers(String className, String source) {
        List<String> members = new ArrayList<>();
        scan(className, source, (where, method, doc) -> members.add(where));
        return members;
    }

    /** The Javadoc problems of the public methods and constructors declared in {@code source}. */
    static List<Problem> check(String className, String source) {
        List<Problem> problems = new ArrayList<>();
        scan(className, source, (where, method, doc) -> {
            if (doc == null) {
                problems.add(new Problem(Kind.NO_JAVADOC, where, "no Javadoc"));
                return;
            }
            Set<String> params = new TreeSet<>();
            boolean hasReturn = false;
            for (DocTree tag : doc.getBlockTags()) {
                if (tag instanceof ParamTree p && !p.isTypeParameter()) {
                    params.add(p.getName().getName().toString());
                } else if (tag.getKind() == DocTree.Kind.RETURN) {
                    hasReturn = true;
                }
            }
            // {@return ...} in the first sentence documents the return as well
            hasReturn |= doc.getFullBody().stream().anyMatch(t -> t.getKind() == DocTree.Kind.RETURN);
            for (VariableTree parameter : method.getParameters()) {
                String name = parameter.getName().toString();
                if (!params.contains(name)) {
                    problems.add(new Problem(Kind.NO_PARAM, where, "no @param " + name));
                }
            }
            boolean constructor = method.getReturnType() == null;
            boolean returnsNothing = !constructor
                    && method.getReturnType().getKind() == Tree.Kind.PRIMITIVE_TYPE
                    && method.getReturnType().toString().equals("void");
            if (constructor && hasReturn) {
                problems.add(new Problem(Kind.RETURN_ON_NOTHING, where, "@return on a constructor"));
            } else if (returnsNothing && hasReturn) {
                problems.add(new Problem(Kind.RETURN_ON_NOTHING, where, "@return on a void method"));
            } else if (!constructor && !returnsNothing && !hasReturn) {
                problems.add(new Problem(Kind.NO_RETURN, where, "no @return (returns " + method.getReturnType() + ")"));
            }
        });
        return problems;
    }

    @FunctionalInterface
    private interface MemberVisitor {
        void visit(String where, MethodTree method, DocCommentTree doc);
    }

    /**
     * Parses {@code source} and calls {@code visitor} for each public method and constructor of its public types,
     * nested ones included, that does not override; {@code where} reads {@code Outer.Inner#name(Type, Type)}.
     */
    private static void scan(String className, String source, MemberVisitor visitor) {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        assertThat(javac).as("a JDK (with its compiler) runs the tests").isNotNull();
        JavaFileObject file =
                new SimpleJavaFileObject(URI.create("string:///" + className + ".java"), JavaFileObject.Kind.SOURCE) {
                    @Override
                    public CharSequence getCharContent(boolean ignoreEncodingErrors) {
                        return source;
                    }
                };
        JavacTask task = (JavacTask) javac.getTask(null, null, d -> {}, List.of("-proc:none"), null, List.of(file));
        Iterable<? extends CompilationUnitTree> units;
        try {
            units = task.parse();
        } catch (IOException e) {
            throw new AssertionError("Cannot parse " + className, e);
        }
        DocTrees docs = DocTrees.instance(task);
        for (CompilationUnitTree unit : units) {
            new TreePathScanner<Void, Void>() {
                private final Deque<ClassTree> types = new ArrayDeque<>();

                @Override
                public Void visitClass(ClassTree type, Void unused) {
                    boolean api = types.isEmpty()
                            ? type.getModifiers().getFlags().contains(Modifier.PUBLIC)
                            : isPublic(type.getModifiers().getFlags());
                    if (!api) {
                        return null; // a type that is not API, and nothing in it
                    }
                    types.push(type);
                    try {
                        return super.visitClass(type, unused);
                    } finally {
                        types.pop();
                    }
                }

                @Override
                public Void visitMethod(MethodTree method, Void unused) {
                    if (isPublic(method.getModifiers().getFlags()) && !overrides(method)) {
                        visitor.visit(where(method), method, docs.getDocCommentTree(getCurrentPath()));
                    }
                    return null; // nothing inside a method body is API
                }

                private boolean isPublic(Set<Modifier> flags) {
                    if (flags.contains(Modifier.PUBLIC)) {
                        return true;
                    }
                    Tree.Kind enclosing = types.peek().getKind();
                    boolean inInterface = enclosing == Tree.Kind.INTERFACE || enclosing == Tree.Kind.ANNOTATION_TYPE;
                    return inInterface && !flags.contains(Modifier.PRIVATE);
                }

                private boolean overrides(MethodTree method) {
                    return method.getModifiers().getAnnotations().stream()
                            .anyMatch(a -> a.getAnnotationType().toString().endsWith("Override"));
                }

                private String where(MethodTree method) {
                    List<String> names = new ArrayList<>();
                    types.descendingIterator()
                            .forEachRemaining(t -> names.add(t.getSimpleName().toString()));
                    String type = String.join(".", names);
                    String name = method.getReturnType() == null
                            ? types.peek().getSimpleName().toString()
                            : method.getName().toString();
                    String parameters = method.getParameters().stream()
                            .map(p -> p.getType().toString())
                            .collect(Collectors.joining(", "));
                    return type + "#" + name + "(" + parameters + ")";
                }
            }.scan(new TreePath(unit), null);
        }
    }
}
