"""SavedModel export in TF Serving's `<export_dir>/<name>/<version>/` layout."""
