"""The wire: what crosses HTTP between the service, its workers and clients — request and response
bodies, the rules every value meets, and the reason codes. Imports neither the server nor the workers."""
