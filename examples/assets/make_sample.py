"""Draws examples/assets/sample.png: a few coloured shapes on a sky-and-grass background.

The examples and the deployment smoke test send this picture. Run it again to recreate the
file byte for byte: python examples/assets/make_sample.py
"""

from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 640, 480
HORIZON = 330


def draw_sample() -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), (135, 196, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, HORIZON, WIDTH, HEIGHT), fill=(92, 168, 80))
    draw.ellipse((500, 40, 590, 130), fill=(250, 210, 60))  # sun
    draw.rectangle((120, 210, 300, 360), fill=(200, 70, 60))  # red block
    draw.polygon([(100, 210), (210, 120), (320, 210)], fill=(90, 60, 140))  # purple roof
    draw.rectangle((185, 290, 235, 360), fill=(110, 70, 40))  # brown door
    draw.ellipse((380, 270, 470, 360), fill=(240, 140, 40))  # orange ball
    draw.polygon([(480, 360), (540, 250), (600, 360)], fill=(40, 110, 200))  # blue triangle
    return image


if __name__ == "__main__":
    target = Path(__file__).with_name("sample.png")
    draw_sample().save(target, format="PNG", optimize=True)
    print(f"wrote {target} ({target.stat().st_size} bytes)")
