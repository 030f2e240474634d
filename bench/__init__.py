"""`make bench`: load tests of the IdP in its production shape."""
