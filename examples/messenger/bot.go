package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/groups"
)

// startBot starts the demo's second peer on this machine: a contact named
// "bot" that accepts you, comes online, changes its presence now and then and
// answers what you write. It is a real messenger, talking to yours over juxta
// on 127.0.0.1.
func startBot(ctx context.Context, dir string, user *im.Messenger) (*im.Messenger, error) {
	bot, err := im.Open(ctx, im.Config{Dir: dir, Name: "bot", Loopback: true, NoMDNS: true, AutoAway: -1, Heartbeat: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	sub := bot.Subscribe(context.Background())
	go botLoop(bot, sub.C)
	// The bot asks to be your contact, as a friend would; the demo accepts.
	if _, err := bot.AddContact(ctx, user.Invite(), ""); err != nil {
		bot.Close()
		return nil, err
	}
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if c, err := user.Contact(bot.ID().String()); err == nil {
				if c.State == im.Pending {
					user.Accept(ctx, c.ID)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return bot, nil
}

var botMoods = []struct {
	state groups.State
	text  string
}{
	{groups.Online, "ready to chat"},
	{groups.Away, "getting coffee"},
	{groups.Busy, "computing primes"},
	{groups.Online, "back"},
}

func botLoop(bot *im.Messenger, events <-chan im.Event) {
	ctx := context.Background()
	mood := time.NewTicker(20 * time.Second)
	defer mood.Stop()
	i := 0
	bot.SetPresence(botMoods[0].state, botMoods[0].text)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch e := ev.(type) {
			case im.ContactRequest:
				bot.Accept(ctx, e.Contact.ID)
			case im.MessageAdded:
				if e.Message.Out || e.Message.Room != "" {
					continue
				}
				bot.OpenChat(ctx, e.Message.Peer)
				bot.Send(ctx, e.Message.Peer, botReply(e.Message.Text))
			}
		case <-mood.C:
			i = (i + 1) % len(botMoods)
			bot.SetPresence(botMoods[i].state, botMoods[i].text)
		}
	}
}

func botReply(text string) string {
	t := strings.ToLower(strings.TrimSpace(text))
	switch {
	case strings.Contains(t, "hello") || strings.Contains(t, "hi"):
		return "hello! I am a juxta peer on this machine. Try /status away, or send me a file with /file bot PATH."
	case strings.HasSuffix(t, "?"):
		return "good question. I only know that your message reached me by peer ID, not by address."
	}
	return fmt.Sprintf("you said %q (%d bytes). It was delivered, and I read it.", text, len(text))
}
