"""The HLS sources (C++), shipped as package data so the csim back-end can build them."""
