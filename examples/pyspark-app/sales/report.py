"""The report: an RDD of numpy draws, a DataFrame, a Python UDF through SQL, pandas at the end."""

import numpy as np
import pandas as pd
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

ORDER_SCHEMA = StructType(
    [
        StructField("region", StringType(), False),
        StructField("order_value", DoubleType(), False),
    ]
)


def draw_orders(region_index, region, settings):
    """One region's orders: exponential order values from a generator seeded per region, so the
    same settings give the same report on any number of executors."""
    rng = np.random.default_rng([settings.seed, region_index])
    values = rng.exponential(settings.mean_order_value, settings.orders_per_region)
    return [(region, float(round(v, 2))) for v in values]


def size_band(value, threshold):
    return "large" if value >= threshold else "small"


def run(spark, settings, date, output):
    regions = list(enumerate(settings.regions))
    orders = spark.sparkContext.parallelize(regions, len(regions)).flatMap(
        lambda pair: draw_orders(pair[0], pair[1], settings)
    )
    spark.createDataFrame(orders, ORDER_SCHEMA).createOrReplaceTempView("orders")
    threshold = settings.large_order_threshold
    spark.udf.register("size_band", lambda v: size_band(v, threshold), StringType())
    summary = spark.sql(
        f"""
        SELECT '{date}' AS day, region, size_band(order_value) AS band,
               COUNT(*) AS orders, ROUND(SUM(order_value), 2) AS revenue
        FROM orders
        GROUP BY region, size_band(order_value)
        ORDER BY region, band
        """
    )
    summary.write.mode("overwrite").json(output)
    frame = summary.toPandas()
    assert isinstance(frame, pd.DataFrame)
    return frame
