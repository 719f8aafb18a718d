"""`git exp ui`: the local web dashboard (server.py), the JSON it serves (api.py) and its static
page (static/)."""
