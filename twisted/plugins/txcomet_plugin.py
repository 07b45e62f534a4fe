from twisted.application.service import ServiceMaker

txcomet = ServiceMaker("txcomet", "txcomet.tap", "Server push: every comet transport and WebSocket on one bus.", "txcomet")
