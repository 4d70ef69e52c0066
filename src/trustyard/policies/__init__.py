"""Policies and promotion (issue 12): one rule engine over the facts of an image, and the
promotion of images between repositories, by hand or by policy, in chains and branches."""
