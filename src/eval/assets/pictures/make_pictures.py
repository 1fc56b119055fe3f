"""Draws the evaluation pictures: five simple scenes of flat shapes, made for this project.

`pictale eval` sends them with its bundled prompts (src/eval/assets/prompts.json). They are
drawn here rather than taken from elsewhere so that their source is this file and nothing else;
each is a 16-colour PNG of a few kilobytes. Run it again to recreate the files byte for byte:
python src/eval/assets/pictures/make_pictures.py
"""

from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 480, 360
Box = tuple[int, int, int, int]


def cottage(draw: ImageDraw.ImageDraw) -> None:
    """A cottage with a red roof, a tree, a sun and a ball on the grass."""
    draw.rectangle((0, 0, WIDTH, 250), fill=(150, 205, 240))
    draw.rectangle((0, 250, WIDTH, HEIGHT), fill=(100, 175, 85))
    draw.ellipse((380, 30, 450, 100), fill=(250, 215, 70))  # sun
    draw.rectangle((90, 160, 250, 280), fill=(235, 225, 200))  # walls
    draw.polygon([(70, 160), (170, 85), (270, 160)], fill=(185, 55, 50))  # roof
    draw.rectangle((200, 95, 222, 135), fill=(120, 90, 80))  # chimney
    draw.rectangle((150, 215, 190, 280), fill=(105, 70, 45))  # door
    draw.rectangle((105, 185, 140, 215), fill=(120, 180, 220))  # window
    draw.rectangle((205, 185, 240, 215), fill=(120, 180, 220))  # window
    draw.rectangle((345, 190, 365, 285), fill=(110, 75, 45))  # tree trunk
    draw.ellipse((305, 110, 405, 215), fill=(50, 130, 60))  # tree crown
    draw.ellipse((290, 290, 325, 325), fill=(60, 110, 210))  # ball


def harbour(draw: ImageDraw.ImageDraw) -> None:
    """A sailing boat on the sea, a lighthouse on a rock, clouds and two gulls."""
    draw.rectangle((0, 0, WIDTH, 220), fill=(175, 215, 240))
    draw.rectangle((0, 220, WIDTH, HEIGHT), fill=(40, 95, 160))
    for box in [(40, 40, 150, 80), (90, 25, 190, 70), (280, 60, 380, 95)]:
        draw.ellipse(box, fill=(250, 250, 250))  # clouds
    draw.polygon([(320, 230), (360, 170), (470, 170), (480, 230)], fill=(110, 105, 100))  # rock
    draw.rectangle((395, 70, 425, 170), fill=(245, 245, 240))  # lighthouse
    draw.rectangle((395, 100, 425, 120), fill=(200, 45, 45))  # its red band
    draw.rectangle((395, 135, 425, 155), fill=(200, 45, 45))
    draw.polygon([(390, 70), (410, 48), (430, 70)], fill=(200, 45, 45))  # lamp roof
    draw.polygon([(90, 270), (250, 270), (225, 300), (115, 300)], fill=(150, 85, 45))  # hull
    draw.rectangle((168, 150, 173, 270), fill=(90, 60, 40))  # mast
    draw.polygon([(175, 155), (175, 262), (245, 262)], fill=(250, 245, 230))  # sail
    for x, y in [(230, 110), (270, 130)]:
        draw.line([(x - 14, y - 6), (x, y), (x + 14, y - 6)], fill=(60, 60, 60), width=3)  # gulls


def night_city(draw: ImageDraw.ImageDraw) -> None:
    """Tall buildings with lit windows under a crescent moon and stars."""
    draw.rectangle((0, 0, WIDTH, HEIGHT), fill=(20, 25, 60))
    draw.ellipse((60, 40, 120, 100), fill=(245, 240, 200))  # moon
    draw.ellipse((80, 32, 140, 92), fill=(20, 25, 60))  # its shadow: a crescent
    for x, y in [(200, 40), (260, 80), (330, 30), (410, 70), (450, 25), (160, 110)]:
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(255, 255, 230))  # stars
    buildings: list[Box] = [(20, 200, 110, HEIGHT), (120, 150, 200, HEIGHT), (215, 230, 300, HEIGHT),
                            (310, 120, 380, HEIGHT), (390, 190, 470, HEIGHT)]
    for left, top, right, bottom in buildings:
        draw.rectangle((left, top, right, bottom), fill=(55, 60, 85))
        for y in range(top + 15, bottom - 20, 30):
            for x in range(left + 12, right - 15, 24):
                lit = (x // 24 + y // 30) % 3 != 0
                draw.rectangle((x, y, x + 12, y + 14), fill=(250, 205, 90) if lit else (35, 40, 60))


def kitchen_table(draw: ImageDraw.ImageDraw) -> None:
    """A cup, a plate and an apple on a wooden table, in front of a window."""
    draw.rectangle((0, 0, WIDTH, HEIGHT), fill=(240, 230, 205))
    draw.rectangle((150, 30, 330, 170), fill=(160, 210, 240))  # window
    draw.line([(240, 30), (240, 170)], fill=(250, 250, 250), width=6)
    draw.line([(150, 100), (330, 100)], fill=(250, 250, 250), width=6)
    draw.rectangle((0, 220, WIDTH, HEIGHT), fill=(165, 110, 65))  # table
    draw.ellipse((60, 250, 210, 300), fill=(250, 250, 250))  # plate
    draw.ellipse((105, 215, 165, 275), fill=(205, 40, 40))  # apple
    draw.line([(135, 218), (140, 200)], fill=(90, 60, 30), width=4)  # its stalk
    draw.rectangle((290, 215, 350, 290), fill=(70, 120, 190))  # cup
    draw.arc((335, 230, 375, 270), start=-90, end=90, fill=(70, 120, 190), width=8)  # handle


def park(draw: ImageDraw.ImageDraw) -> None:
    """A park: a bench by a pond with a duck, two trees and a kite in the sky."""
    draw.rectangle((0, 0, WIDTH, 200), fill=(190, 225, 245))
    draw.rectangle((0, 200, WIDTH, HEIGHT), fill=(120, 190, 95))
    draw.ellipse((250, 250, 460, 330), fill=(80, 150, 200))  # pond
    draw.ellipse((330, 270, 370, 295), fill=(250, 250, 245))  # duck's body
    draw.ellipse((355, 255, 375, 275), fill=(250, 250, 245))  # its head
    draw.polygon([(375, 263), (388, 266), (375, 270)], fill=(240, 160, 40))  # its beak
    for trunk, crown in [((50, 130, 65, 230), (15, 60, 100, 150)), ((180, 150, 192, 225), (150, 95, 222, 165))]:
        draw.rectangle(trunk, fill=(110, 75, 45))
        draw.ellipse(crown, fill=(45, 125, 55))  # trees
    draw.rectangle((70, 260, 200, 272), fill=(140, 95, 55))  # bench seat
    draw.rectangle((70, 240, 200, 250), fill=(140, 95, 55))  # its back
    for x in (80, 185):
        draw.rectangle((x, 272, x + 6, 295), fill=(70, 70, 70))  # its legs
    draw.polygon([(330, 40), (355, 75), (330, 110), (305, 75)], fill=(230, 70, 120))  # kite
    draw.line([(330, 110), (300, 160), (280, 230)], fill=(80, 80, 80), width=2)  # its string


SCENES = {"cottage": cottage, "harbour": harbour, "night-city": night_city, "kitchen-table": kitchen_table, "park": park}


def draw_scene(name: str) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    SCENES[name](ImageDraw.Draw(image))
    # 16 colours: flat shapes lose nothing, and each file stays a few kilobytes.
    return image.quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


if __name__ == "__main__":
    folder = Path(__file__).parent
    for name in SCENES:
        target = folder / f"{name}.png"
        draw_scene(name).save(target, format="PNG", optimize=True)
        print(f"wrote {target} ({target.stat().st_size} bytes)")
