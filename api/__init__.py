"""HTTP layer only: FastAPI app factory, routes and pydantic schemas."""
