"""`alertd run`: the supervisor and the components it runs (SPEC R6.1, DESIGN §1.5)."""
