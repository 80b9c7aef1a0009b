from services.kit.migrations import run_migrations
from services.segment.models import Model

run_migrations(Model.metadata)
