"""sslgeo: the geometry of self-supervised contrastive learning, measured (the library behind the book).

Every module imports what it needs at its top, except the optional heavy packages below, which are imported
inside the functions that use them (Ray for its executor, papermill for `sslgeo params`, scikit-dimension for
the intrinsic-dimension estimators, Selenium for the browser tests, myst-nb and IPython for glue in notebooks):
importing the library loads none of them.
"""

OPTIONAL_PACKAGES = ("ray", "papermill", "skdim", "selenium", "myst_nb", "IPython")
