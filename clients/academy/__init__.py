"""Akademiet: a second product, for single sign-on and logout everywhere."""
