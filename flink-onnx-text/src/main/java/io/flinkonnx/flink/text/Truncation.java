package io.flinkonnx.flink.text;

import org.apache.flink.annotation.PublicEvolving;

/** What a {@link TextEncoder} does with a text that tokenizes to more than its {@code maxLength} tokens. */
@PublicEvolving
public enum Truncation {
    /**
     * Keeps the first tokens (the tokenizer's special tokens, such as {@code [CLS]} and {@code [SEP]}, stay in
     * place): the record is scored on its beginning. The default, as Hugging Face pipelines truncate.
     */
    TRUNCATE,
    /** Refuses the record: a dead letter naming its token count and the maximum. */
    REFUSE
}
