package io.flinkonnx.flink.engine;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The length buckets of ragged batching: steps of about 1.41x, so a padded length stays under sqrt(2) times the record's own. */
class RunGroupingTest {
    @Test
    void lengthsUpToEightShareOneBucket() {
        for (long length = 1; length <= 8; length++) {
            assertThat(RunGrouping.lengthBucket(length)).as("length %d", length).isZero();
        }
    }

    @Test
    void longerLengthsStepByHalfPowersOfTwo() {
        assertBucket(9, 11);
        assertBucket(12, 16);
        assertBucket(17, 23);
        assertBucket(24, 32);
        assertBucket(33, 45);
        assertBucket(46, 64);
    }

    @Test
    void paddingWithinABucketStaysUnderASquareRootOfTwo() {
        for (long length = 9; length <= 1 << 12; length++) {
            long longest = length;
            while (RunGrouping.lengthBucket(longest + 1) == RunGrouping.lengthBucket(length)) {
                longest++;
            }
            assertThat((double) longest / length).as("length %d", length).isLessThan(Math.sqrt(2));
        }
    }

    /** {@code [first, last]} is one bucket, apart from its neighbours. */
    private static void assertBucket(long first, long last) {
        int bucket = RunGrouping.lengthBucket(first);
        for (long length = first; length <= last; length++) {
            assertThat(RunGrouping.lengthBucket(length)).as("length %d", length).isEqualTo(bucket);
        }
        assertThat(RunGrouping.lengthBucket(first - 1)).isLessThan(bucket);
        assertThat(RunGrouping.lengthBucket(last + 1)).isGreaterThan(bucket);
    }
}
