package io.flinkonnx.providers;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.apache.flink.annotation.PublicEvolving;

/**
 * The execution providers the ONNX Runtime Java API can add to a session, each with the options it
 * accepts.
 *
 * <p>Option values are validated when a chain is parsed ({@link OptionKind}); whether the EP exists in the
 * ONNX Runtime build at hand is only known when it is added ({@link SessionOptionsFactory}).
 */
@PublicEvolving
public enum ExecutionProvider {
    CPU("cpu", Map.of("use_arena", OptionKind.BOOLEAN)),
    CUDA(
            "cuda",
            options(
                    "device_id", OptionKind.INTEGER,
                    "gpu_mem_limit", OptionKind.INTEGER,
                    "arena_extend_strategy", OptionKind.TEXT,
                    "cudnn_conv_algo_search", OptionKind.TEXT,
                    "do_copy_in_default_stream", OptionKind.BOOLEAN,
                    "cudnn_conv_use_max_workspace", OptionKind.BOOLEAN,
                    "cudnn_conv1d_pad_to_nc1d", OptionKind.BOOLEAN,
                    "enable_cuda_graph", OptionKind.BOOLEAN,
                    "enable_skip_layer_norm_strict_mode", OptionKind.BOOLEAN,
                    "use_tf32", OptionKind.BOOLEAN,
                    "prefer_nhwc", OptionKind.BOOLEAN,
                    "use_ep_level_unified_stream", OptionKind.BOOLEAN,
                    "tunable_op_enable", OptionKind.BOOLEAN,
                    "tunable_op_tuning_enable", OptionKind.BOOLEAN,
                    "tunable_op_max_tuning_duration_ms", OptionKind.INTEGER)),
    TENSORRT(
            "tensorrt",
            options(
                    "device_id", OptionKind.INTEGER,
                    "trt_max_workspace_size", OptionKind.INTEGER,
                    "trt_max_partition_iterations", OptionKind.INTEGER,
                    "trt_min_subgraph_size", OptionKind.INTEGER,
                    "trt_fp16_enable", OptionKind.BOOLEAN,
                    "trt_bf16_enable", OptionKind.BOOLEAN,
                    "trt_int8_enable", OptionKind.BOOLEAN,
                    "trt_int8_calibration_table_name", OptionKind.TEXT,
                    "trt_int8_use_native_calibration_table", OptionKind.BOOLEAN,
                    "trt_dla_enable", OptionKind.BOOLEAN,
                    "trt_dla_core", OptionKind.INTEGER,
                    "trt_dump_subgraphs", OptionKind.BOOLEAN,
                    "trt_engine_cache_enable", OptionKind.BOOLEAN,
                    "trt_engine_cache_path", OptionKind.TEXT,
                    "trt_engine_cache_prefix", OptionKind.TEXT,
                    "trt_engine_decryption_enable", OptionKind.BOOLEAN,
                    "trt_engine_decryption_lib_path", OptionKind.TEXT,
                    "trt_force_sequential_engine_build", OptionKind.BOOLEAN,
                    "trt_context_memory_sharing_enable", OptionKind.BOOLEAN,
                    "trt_layer_norm_fp32_fallback", OptionKind.BOOLEAN,
                    "trt_timing_cache_enable", OptionKind.BOOLEAN,
                    "trt_timing_cache_path", OptionKind.TEXT,
                    "trt_force_timing_cache", OptionKind.BOOLEAN,
                    "trt_detailed_build_log", OptionKind.BOOLEAN,
                    "trt_build_heuristics_enable", OptionKind.BOOLEAN,
                    "trt_sparsity_enable", OptionKind.BOOLEAN,
                    "trt_builder_optimization_level", OptionKind.INTEGER,
                    "trt_auxiliary_streams", OptionKind.INTEGER,
                    "trt_tactic_sources", OptionKind.TEXT,
                    "trt_extra_plugin_lib_paths", OptionKind.TEXT,
                    "trt_profile_min_shapes", OptionKind.TEXT,
                    "trt_profile_max_shapes", OptionKind.TEXT,
                    "trt_profile_opt_shapes", OptionKind.TEXT,
                    "trt_cuda_graph_enable", OptionKind.BOOLEAN,
                    "trt_dump_ep_context_model", OptionKind.BOOLEAN,
                    "trt_ep_context_file_path", OptionKind.TEXT,
                    "trt_ep_context_embed_mode", OptionKind.INTEGER,
                    "trt_engine_hw_compatible", OptionKind.BOOLEAN)),
    ROCM("rocm", Map.of("device_id", OptionKind.INTEGER)),
    DNNL("dnnl", Map.of("use_arena", OptionKind.BOOLEAN)),
    OPENVINO("openvino", Map.of("device_type", OptionKind.TEXT)),
    COREML(
            "coreml",
            options(
                    "ModelFormat", OptionKind.TEXT,
                    "MLComputeUnits", OptionKind.TEXT,
                    "RequireStaticInputShapes", OptionKind.TEXT,
                    "EnableOnSubgraphs", OptionKind.TEXT,
                    "SpecializationStrategy", OptionKind.TEXT,
                    "ProfileComputePlan", OptionKind.TEXT,
                    "AllowLowPrecisionAccumulationOnGPU", OptionKind.TEXT,
                    "ModelCacheDirectory", OptionKind.TEXT)),
    NNAPI(
            "nnapi",
            options(
                    "use_fp16", OptionKind.BOOLEAN,
                    "use_nchw", OptionKind.BOOLEAN,
                    "cpu_disabled", OptionKind.BOOLEAN,
                    "cpu_only", OptionKind.BOOLEAN)),
    QNN(
            "qnn",
            options(
                    "backend_type", OptionKind.TEXT,
                    "backend_path", OptionKind.TEXT,
                    "profiling_level", OptionKind.TEXT,
                    "profiling_file_path", OptionKind.TEXT,
                    "rpc_control_latency", OptionKind.INTEGER,
                    "vtcm_mb", OptionKind.INTEGER,
                    "htp_performance_mode", OptionKind.TEXT,
                    "qnn_saver_path", OptionKind.TEXT,
                    "qnn_context_priority", OptionKind.TEXT,
                    "htp_graph_finalization_optimization_mode", OptionKind.INTEGER,
                    "soc_model", OptionKind.INTEGER,
                    "htp_arch", OptionKind.INTEGER,
                    "device_id", OptionKind.INTEGER,
                    "enable_htp_fp16_precision", OptionKind.BOOLEAN,
                    "offload_graph_io_quantization", OptionKind.BOOLEAN,
                    "enable_htp_spill_fill_buffer", OptionKind.BOOLEAN,
                    "enable_htp_shared_memory_allocator", OptionKind.BOOLEAN,
                    "dump_json_qnn_graph", OptionKind.BOOLEAN,
                    "json_qnn_graph_dir", OptionKind.TEXT)),
    XNNPACK("xnnpack", Map.of("intra_op_num_threads", OptionKind.INTEGER)),
    ACL("acl", Map.of("enable_fast_math", OptionKind.BOOLEAN)),
    ARMNN("armnn", Map.of("use_arena", OptionKind.BOOLEAN)),
    DIRECTML("directml", Map.of("device_id", OptionKind.INTEGER));

    /** How an option's value is checked. */
    public enum OptionKind {
        BOOLEAN,
        INTEGER,
        TEXT
    }

    private static final Map<String, ExecutionProvider> ALIASES =
            Map.of("trt", TENSORRT, "dml", DIRECTML, "onednn", DNNL, "mkldnn", DNNL, "coreml", COREML);

    private final String id;
    private final Map<String, OptionKind> options;

    ExecutionProvider(String id, Map<String, OptionKind> options) {
        this.id = id;
        this.options = options;
    }

    /** The lower-case name used in chain texts and configuration keys, e.g. {@code tensorrt}. */
    public String id() {
        return id;
    }

    /** The options this EP accepts, with their kinds. */
    public Map<String, OptionKind> options() {
        return options;
    }

    /** Looks an EP up by id or alias ({@code trt}, {@code dml}, {@code onednn}), case-insensitively. */
    public static ExecutionProvider fromId(String name) {
        String key = name.trim().toLowerCase(Locale.ROOT);
        for (ExecutionProvider ep : values()) {
            if (ep.id.equals(key)) {
                return ep;
            }
        }
        ExecutionProvider alias = ALIASES.get(key);
        if (alias != null) {
            return alias;
        }
        throw new IllegalArgumentException("Unknown execution provider '" + name + "'. Valid ones: " + validIds()
                + " (aliases: trt, dml, onednn).");
    }

    /** {@code cpu, cuda, tensorrt, ...}. */
    public static String validIds() {
        return Arrays.stream(values()).map(ExecutionProvider::id).collect(Collectors.joining(", "));
    }

    /** Checks one option; the message says what was wrong and what is allowed. */
    void checkOption(String key, String value) {
        OptionKind kind = options.get(key);
        if (kind == null) {
            Set<String> valid = new TreeSet<>(options.keySet());
            throw new IllegalArgumentException("Unknown option '" + key + "' for execution provider " + id
                    + ". Valid options: " + String.join(", ", valid) + ".");
        }
        switch (kind) {
            case BOOLEAN:
                if (!List.of("true", "false", "1", "0").contains(value.toLowerCase(Locale.ROOT))) {
                    throw new IllegalArgumentException(
                            "Option " + id + "." + key + " must be true/false (or 1/0), got '" + value + "'.");
                }
                break;
            case INTEGER:
                try {
                    Long.parseLong(value);
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException(
                            "Option " + id + "." + key + " must be an integer, got '" + value + "'.");
                }
                break;
            default:
                break;
        }
    }

    private static Map<String, OptionKind> options(Object... pairs) {
        LinkedHashMap<String, OptionKind> m = new LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            m.put((String) pairs[i], (OptionKind) pairs[i + 1]);
        }
        return Collections.unmodifiableMap(m);
    }
}
