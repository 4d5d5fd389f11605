"""Model lifecycle: fine-tuning, distillation, compression, export and serving."""
