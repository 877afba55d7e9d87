import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.leds import EMOTION_COLOURS, NullLeds, StatusLeds, emotion_colour
from device.types import EMOTIONS
from tests.waiting import wait_until


@pytest.fixture
def factory():
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


def states(pin):
    return [bool(s.state) for s in pin.states]


def toggles(pin, since=0):
    seq = states(pin)[since:]
    return sum(a != b for a, b in zip(seq, seq[1:]))


def test_starting_blinks_then_running_is_solid(factory):
    leds = StatusLeds(17, pin_factory=factory, blink_s=0.02)
    pin = factory.pin(17)
    leds.starting()
    assert wait_until(lambda: toggles(pin) >= 4, 5)
    leds.running()  # gpiozero stops the blink thread before it returns
    mark = len(pin.states)
    assert pin.state and leds.status.value == 1
    leds.starting()  # ... and a pattern that changes again toggles again
    assert wait_until(lambda: toggles(pin, since=mark - 1) >= 2, 5)
    leds.close()


def gaps(pin, since=0):
    # MockPin stamps each state with the time since the previous one
    return sorted(s.timestamp for s in pin.states[since + 1:])


def test_error_blinks_faster_than_starting(factory):
    leds = StatusLeds(17, pin_factory=factory, blink_s=0.08, fast_blink_s=0.01)
    pin = factory.pin(17)
    leds.starting()
    assert wait_until(lambda: len(pin.states) >= 5, 5)
    slow = gaps(pin, since=1)  # skip the initial off->on
    leds.error()
    mark = len(pin.states)
    assert wait_until(lambda: len(pin.states) >= mark + 6, 5)
    fast = gaps(pin, since=mark)
    leds.close()
    assert len(slow) >= 2 and len(fast) >= 4
    assert slow[len(slow) // 2] == pytest.approx(0.08, abs=0.04)
    assert fast[len(fast) // 2] < slow[len(slow) // 2] / 2


@pytest.mark.parametrize("pattern,args", [
    ("starting", {"on_time": 0.5, "off_time": 0.5}),
    ("error", {"on_time": 0.1, "off_time": 0.1}),
    ("degraded", {"on_time": 1.8, "off_time": 0.2}),
])
def test_each_status_pattern_asks_gpiozero_for_its_blink(factory, monkeypatch, pattern, args):
    leds = StatusLeds(17, pin_factory=factory)
    calls = []
    monkeypatch.setattr(leds.status, "blink", lambda **kw: calls.append(kw))
    getattr(leds, pattern)()
    assert calls == [args]
    leds.close()


def test_presence_led_follows_presence(factory):
    leds = StatusLeds(17, presence_pin=27, pin_factory=factory)
    pin = factory.pin(27)
    assert not pin.state
    leds.presence(True)
    assert pin.state
    leds.presence(False)
    assert not pin.state
    assert states(pin)[-3:] == [False, True, False]
    leds.close()


def test_presence_and_emotion_without_those_leds_touch_no_pin(factory):
    leds = StatusLeds(17, pin_factory=factory)
    status = factory.pin(17)
    before = list(status.states)
    leds.presence(True)
    leds.emotion("happy")
    assert list(status.states) == before  # the status LED is left alone
    assert [p.number for p in factory.pins.values()] == [17]  # no other pin was claimed
    with pytest.raises(ValueError, match="bored"):
        leds.emotion("bored")  # still validated, as with an RGB LED fitted
    leds.close()


def test_rgb_led_shows_emotion_colours(factory):
    leds = StatusLeds(17, rgb_pins=(5, 6, 13), pin_factory=factory)
    r, g, b = (factory.pin(n) for n in (5, 6, 13))
    leds.emotion("sad")
    assert (r.state, g.state, b.state) == (0, 0, 1)
    leds.emotion("happy")
    assert (r.state, g.state, b.state) == pytest.approx(EMOTION_COLOURS["happy"])
    leds.emotion(None)
    assert (r.state, g.state, b.state) == (0, 0, 0)
    with pytest.raises(ValueError, match="bored"):
        leds.emotion("bored")
    leds.close()


def test_every_emotion_has_a_distinct_colour():
    colours = [emotion_colour(e) for e in EMOTIONS]
    assert len(set(colours)) == len(EMOTIONS) and (0, 0, 0) not in colours
    assert emotion_colour("unknown") == (0, 0, 0)


def test_close_turns_off_and_releases_pins(factory):
    leds = StatusLeds(17, presence_pin=27, pin_factory=factory)
    leds.running()
    leds.presence(True)
    leds.close()
    assert not factory.pin(17).state and not factory.pin(27).state
    leds.close()  # twice is fine
    again = StatusLeds(17, presence_pin=27, pin_factory=factory)  # pins are free again
    again.close()


def test_pin_conflict_releases_what_was_claimed(factory):
    from gpiozero import GPIOPinInUse

    with pytest.raises(GPIOPinInUse):
        StatusLeds(17, presence_pin=17, pin_factory=factory)
    StatusLeds(17, pin_factory=factory).close()  # 17 was released by the failed constructor


def test_null_leds_accept_the_same_calls():
    with NullLeds() as leds:
        leds.starting()
        leds.running()
        leds.error()
        leds.presence(True)
        leds.emotion("angry")
        with pytest.raises(ValueError):
            leds.emotion("bored")
