"""The agent suite: server-rendered pages (Jinja2) and small ES modules, served by the gateway."""
