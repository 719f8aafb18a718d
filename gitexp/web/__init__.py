"""`git exp ui`: the local web dashboard (server.py) and its static page (static/)."""
