from services.kit.migrations import run_migrations
from services.reporting.models import Model

run_migrations(Model.metadata)
