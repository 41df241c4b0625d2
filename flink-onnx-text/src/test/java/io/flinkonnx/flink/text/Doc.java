package io.flinkonnx.flink.text;

/** A test record: an id and a text (null allowed), a Flink POJO. */
public class Doc {
    public int id;
    public String text;

    public Doc() {}

    public Doc(int id, String text) {
        this.id = id;
        this.text = text;
    }

    @Override
    public String toString() {
        return "Doc{" + id + "}";
    }
}
