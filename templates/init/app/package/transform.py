"""The job's logic. Replace it with yours; keep it importable without Spark running."""

from dateutil.relativedelta import relativedelta
from dateutil.parser import isoparse


def week_of(day):
    """The Monday that starts the week of `day` (python-dateutil, a shipped dependency)."""
    parsed = isoparse(day)
    return (parsed - relativedelta(days=parsed.weekday())).date().isoformat()


def run(spark, date, settings):
    rows = int(settings.get("rows", "1000"))
    buckets = int(settings.get("buckets", "4"))
    week = week_of(date)
    data = spark.sparkContext.parallelize(range(rows), buckets).map(
        lambda i: (i % buckets, i)
    )
    frame = spark.createDataFrame(data, ["bucket", "value"])
    frame.createOrReplaceTempView("numbers")
    return spark.sql(
        f"SELECT '{date}' AS day, '{week}' AS week, bucket, COUNT(*) AS n, SUM(value) AS total "
        "FROM numbers GROUP BY bucket ORDER BY bucket"
    )
