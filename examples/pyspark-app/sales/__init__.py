"""The daily sales report's own code, shipped to the cluster as a zip on --py-files."""
