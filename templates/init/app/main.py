"""@NAME@: the entry script spark-submit runs.

    spark-submit main.py --date 2026-11-20 --output s3://bucket/@NAME@/dt=2026-11-20/
"""

import argparse
import configparser
import sys

from pyspark.sql import SparkSession

from @PACKAGE@ import transform


def main(argv):
    parser = argparse.ArgumentParser(description="@NAME@")
    parser.add_argument("--date", required=True, help="the day to process, YYYY-MM-DD")
    parser.add_argument("--output", required=True, help="where the result is written")
    args = parser.parse_args(argv)

    # conf/ travels as a folder: in cluster mode it is in every container's working directory.
    config = configparser.ConfigParser()
    if not config.read("conf/app.ini"):
        raise FileNotFoundError("conf/app.ini is not in the working directory")
    settings = config["job"]

    spark = SparkSession.builder.appName(f"@NAME@ {args.date}").getOrCreate()
    try:
        result = transform.run(spark, args.date, settings)
        result.write.mode("overwrite").json(args.output)
        for row in result.collect():
            print(row.asDict())
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
