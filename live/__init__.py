"""Live classes over WebRTC (aiortc): rooms, the teacher's media relayed to learners, a data
channel for chat and in-class quizzes, and QoS from the server's and the browsers' getStats()."""
