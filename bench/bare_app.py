"""The baseline: the smallest Flask app, one JSON endpoint, served the same way as the target."""
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/bare")
def bare():
    """Return a tiny JSON document."""
    return jsonify(ok=True)
