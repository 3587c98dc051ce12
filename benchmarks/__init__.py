"""The benchmark suite: Flash DB against SQLAlchemy Core, SQLAlchemy ORM and Tortoise ORM."""
