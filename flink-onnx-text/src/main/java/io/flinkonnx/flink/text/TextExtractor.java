package io.flinkonnx.flink.text;

import java.io.Serializable;
import org.apache.flink.annotation.PublicEvolving;

/**
 * Reads the text to tokenize out of a record.
 *
 * <pre>{@code
 * TextExtractor<Ticket> subject = Ticket::subject;
 * }</pre>
 *
 * @param <IN> the record type
 */
@FunctionalInterface
@PublicEvolving
public interface TextExtractor<IN> extends Serializable {
    /**
     * The record's text.
     *
     * @param record the record to score
     * @return its text; null is a bad record (a dead letter), as is an empty text
     * @throws Exception when the text cannot be read: the record is a dead letter with this reason
     */
    String text(IN record) throws Exception;
}
