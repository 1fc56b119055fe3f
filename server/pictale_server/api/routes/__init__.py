"""HTTP routes: health, the three generation routes, run cancellation."""
