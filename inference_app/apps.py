from django.apps import AppConfig


class InferenceAppConfig(AppConfig):
    name = "inference_app"
    verbose_name = "Inference"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every usage row gets its trace call, whoever writes it: the gateway passes its own
        # reports (settlement.py); anything else (the lost-request sweep, settle_usage called
        # directly) gets a metadata-only call, written in the same transaction. billing calls
        # the hook without knowing traces.
        from billing import usage
        from inference_app.gateway import call_records

        usage.default_on_written = call_records.calls_record_minimal
