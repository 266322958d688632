"""The catalog as the seed documents it, plus the embedded engine's model.

Prices are USD micros per million tokens. Descriptions are English renderings of the seed's.
`sync_catalog` (inference_app.catalog) writes these rows; it never deletes operator-added models.
"""

EMBEDDED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

CATALOG = [
    {
        "model_id": "deepseek-ai/DeepSeek-R1-0528",
        "display_name": "DeepSeek R1-0528",
        "modality": "text",
        "context_window": 161_000,
        "active_params_b": "37",
        "total_params_b": "680",
        "description": "Optimized for precise reasoning tasks such as complex coding, "
        "mathematics and the analysis of structured documents.",
        "input_price_micros": 1_350_000,
        "output_price_micros": 5_400_000,
        "owned_by": "deepseek-ai",
        "sort_order": 10,
    },
    {
        "model_id": "deepseek-ai/DeepSeek-V3-0324",
        "display_name": "DeepSeek V3-0324",
        "modality": "text",
        "context_window": 161_000,
        "active_params_b": "37",
        "total_params_b": "680",
        "description": "A robust Mixture-of-Experts model tuned for advanced language "
        "processing and comprehensive document analysis.",
        "input_price_micros": 1_140_000,
        "output_price_micros": 2_750_000,
        "owned_by": "deepseek-ai",
        "sort_order": 20,
    },
    {
        "model_id": "meta-llama/Llama-3.1-8B-Instruct",
        "display_name": "Llama 3.1 8B",
        "modality": "text",
        "context_window": 128_000,
        "active_params_b": None,
        "total_params_b": "8",
        "description": "An efficient conversational model optimized for responsive "
        "multilingual chatbot interactions.",
        "input_price_micros": 220_000,
        "output_price_micros": 220_000,
        "owned_by": "meta-llama",
        "sort_order": 30,
    },
    {
        "model_id": "meta-llama/Llama-3.3-70B-Instruct",
        "display_name": "Llama 3.3 70B",
        "modality": "text",
        "context_window": 128_000,
        "active_params_b": None,
        "total_params_b": "70",
        "description": "A multilingual model that excels at conversational tasks, "
        "following detailed instructions and coding.",
        "input_price_micros": 710_000,
        "output_price_micros": 710_000,
        "owned_by": "meta-llama",
        "sort_order": 40,
    },
    {
        "model_id": "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        "display_name": "Llama 4 Scout",
        "modality": "text+vision",
        "context_window": 64_000,
        "active_params_b": "17",
        "total_params_b": "109",
        "description": "A multimodal model that integrates text and image understanding, "
        "ideal for visual tasks and combined analysis.",
        "input_price_micros": 170_000,
        "output_price_micros": 660_000,
        "owned_by": "meta-llama",
        "sort_order": 50,
    },
    {
        "model_id": "microsoft/Phi-4-mini-instruct",
        "display_name": "Phi 4 Mini",
        "modality": "text",
        "context_window": 128_000,
        "active_params_b": "3.8",
        "total_params_b": "3.8",
        "description": "A compact, efficient model suited to fast responses in "
        "resource-constrained environments.",
        "input_price_micros": 80_000,
        "output_price_micros": 350_000,
        "owned_by": "microsoft",
        "sort_order": 60,
    },
    {
        "model_id": EMBEDDED_MODEL_ID,
        "display_name": "SmolLM2 135M",
        "modality": "text",
        "context_window": 8_192,
        "active_params_b": None,
        "total_params_b": "0.135",
        "description": "A tiny instruction-tuned model served by the embedded llama.cpp "
        "engine: runs on any laptop CPU, good for trying the platform end to end.",
        "input_price_micros": 10_000,
        "output_price_micros": 20_000,
        "owned_by": "HuggingFaceTB",
        "sort_order": 5,
    },
]
