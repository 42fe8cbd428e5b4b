"""The `pixtools` command line: submit images, URLs and batches, follow them, download their outputs."""
