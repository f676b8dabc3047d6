"""An aiosmtpd handler for the email tests: a Mailbox that answers the
first message for ann@example.com with a 451 (try again later), every
message for bob@example.com with a 554 (refused for good), and stores the
rest like aiosmtpd.handlers.Mailbox."""

from aiosmtpd.handlers import Mailbox


class FlakyMailbox(Mailbox):
    def __init__(self, mail_dir):
        super().__init__(mail_dir)
        self.deferred = set()

    async def handle_DATA(self, server, session, envelope):
        rcpts = [r.lower() for r in envelope.rcpt_tos]
        if "bob@example.com" in rcpts:
            return "554 5.7.1 bob does not take mail from robots"
        if "ann@example.com" in rcpts and "ann" not in self.deferred:
            self.deferred.add("ann")
            return "451 4.3.0 greylisted, try again later"
        return await super().handle_DATA(server, session, envelope)
