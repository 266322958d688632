from django.db import migrations


def seed(apps, schema_editor):
    from billing.plans import PLAN_DEFAULTS

    Plan = apps.get_model("billing", "Plan")
    for code, defaults in PLAN_DEFAULTS.items():
        Plan.objects.get_or_create(code=code, defaults=defaults)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
