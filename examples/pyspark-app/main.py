"""Daily sales report: the entry script spark-submit runs.

    spark-submit main.py --date 2026-11-20 --output s3://bucket/reports/dt=2026-11-20/

Everything it needs travels with it: the `sales` package (zipped for --py-files), `conf/app.ini`
(the `conf` folder, extracted under its own name in every container's working directory), and
numpy + pandas (built for the cluster's Python and shipped as the dependency archive).
"""

import argparse
import sys

from pyspark.sql import SparkSession

from sales import config, report


def parse_args(argv):
    parser = argparse.ArgumentParser(description="daily sales report")
    parser.add_argument("--date", required=True, help="the day to report, YYYY-MM-DD")
    parser.add_argument("--output", required=True, help="where the report is written")
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    settings = config.load("conf/app.ini")
    spark = SparkSession.builder.appName(f"daily-sales-report {args.date}").getOrCreate()
    try:
        summary = report.run(spark, settings, args.date, args.output)
    finally:
        spark.stop()
    # The driver's stdout: in cluster mode it lands in the first YARN container's log.
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
