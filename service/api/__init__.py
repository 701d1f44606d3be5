"""The REST API: app factory, thin routers, HTTP schemas, auth and error rendering."""
