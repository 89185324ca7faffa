"""Assets, clients and sites: finding the device an alert names (R4.1)."""
