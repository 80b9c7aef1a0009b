from services.delivery.models import Model
from services.kit.migrations import run_migrations

run_migrations(Model.metadata)
