"""The dev profile: tiny random-weight models of the reference architectures, built locally."""
