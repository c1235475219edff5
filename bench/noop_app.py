"""The no-op FastAPI app the HTTP baseline serves: `POST /noop` -> {"ok": true}.

The endpoint does not read the request body: it measures the floor of uvicorn + FastAPI
routing + JSON response rendering, not request validation.
"""

from fastapi import FastAPI

app = FastAPI()


@app.post("/noop")
async def noop() -> dict[str, bool]:
    return {"ok": True}
