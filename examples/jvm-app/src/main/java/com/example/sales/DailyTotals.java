package com.example.sales;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;

/**
 * Daily order totals per region: a small Spark application in Java, submitted with
 * {@code spark-submit --class com.example.sales.DailyTotals sales-totals.jar --date D --output URI}.
 *
 * <p>Orders are generated deterministically from the date (so the example needs no input data);
 * the totals are written as JSON Lines under {@code --output} and printed on the driver.
 */
public final class DailyTotals {
    private DailyTotals() {}

    public static void main(String[] args) {
        String date = null;
        String output = null;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--date": date = args[i + 1]; break;
                case "--output": output = args[i + 1]; break;
                default: throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (date == null || output == null) {
            throw new IllegalArgumentException("usage: DailyTotals --date YYYY-MM-DD --output URI");
        }
        SparkSession spark = SparkSession.builder().appName("sales-totals " + date).getOrCreate();
        try {
            spark.range(0, 90_000, 1, 6).createOrReplaceTempView("ids");
            Dataset<Row> totals = spark.sql(
                "SELECT '" + date + "' AS day, "
                    + "element_at(array('emea', 'americas', 'apac'), CAST(id % 3 AS INT) + 1) AS region, "
                    + "COUNT(*) AS orders, "
                    + "SUM((id * 7919) % 10000) / 100.0 AS revenue "
                    + "FROM ids GROUP BY 2 ORDER BY 2");
            totals.write().mode(SaveMode.Overwrite).json(output);
            for (Row row : totals.collectAsList()) {
                System.out.println(row.getString(1) + " " + row.getLong(2) + " " + row.get(3));
            }
        } finally {
            spark.stop();
        }
    }
}
