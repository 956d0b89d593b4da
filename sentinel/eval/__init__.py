"""Scoring of detector output: the NAB method (:mod:`.nab`) and our labelled data (:mod:`.labels`)."""
