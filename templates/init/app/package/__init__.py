"""@NAME@'s own code: shipped to the cluster in the zip given to --py-files."""
