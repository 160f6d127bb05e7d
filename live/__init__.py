"""Live classes: aiortc rooms, browser client page, WebRTC QoS sampling."""
