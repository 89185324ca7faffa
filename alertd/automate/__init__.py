"""ConnectWise Automate: the REST client, its records and the import's field lists.

`client` talks to the API (the only module here that imports httpx),
`models` turns API JSON into typed records, `fields` holds the fixed
vocabulary of field mappings. Importing this package has no side effects.
"""
